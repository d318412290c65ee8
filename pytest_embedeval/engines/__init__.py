"""Engines that serve embedding models. Kept free of pytest: SGLang's own processes import from here."""


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header an OpenAI-compatible server with ``--api-key`` expects; none without a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
