"""What the plugin owns on every server it talks to: its host, port and key (the SGLang options refused from users,
the key's environment variable, the header that carries it). Free of pytest: SGLang's own processes import it."""

from __future__ import annotations

API_KEY_ENV = "EMBEDEVAL_API_KEY"

# SGLang options the plugin owns: the port is chosen (and checked) by the launcher, the host decides
# whether the exposure warning is shown, and the key travels only through a file only the user can read.
# Each maps to what the user should use instead.
OWNED_OPTIONS = {
    "--host": "use --embed-host instead",
    "--port": "drop it: the plugin picks a free port itself and checks that its own server owns it",
    "--api-key": f"use the {API_KEY_ENV} environment variable (or --embed-api-key) instead",
}


INCUMBENT_API_KEY_ENV = "EMBEDEVAL_INCUMBENT_API_KEY"  # the incumbent's own key: never the candidate's


def redact_url(url: str | None) -> str | None:
    """The URL as it may be printed or stored: credentials in it (``user:password@``, a token as the user
    name) masked."""
    from urllib.parse import urlsplit, urlunsplit

    if not url or "@" not in urlsplit(url).netloc:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header an OpenAI-compatible server with ``--api-key`` expects; none without a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def owned_option(arg: str) -> str | None:
    """The plugin-owned SGLang option ``arg`` sets, if any ("--host" for "--host=0.0.0.0" or "--ho").

    argparse accepts any unambiguous prefix of a long option, and no other SGLang 0.5.23 option starts
    with "--ho", "--po" or "--ap"; a prefix that is ambiguous fails SGLang's own parser anyway.
    """
    if not arg.startswith("--"):
        return None
    name = arg.split("=", 1)[0]
    if len(name) < 3:
        return None
    for option in OWNED_OPTIONS:
        if option.startswith(name):
            return option
    return None


def check_server_args(args, where: str) -> None:
    """Refuse SGLang arguments that would override the host, port or key the plugin sets.

    ``where`` names where the arguments came from ("--embed-server-arg", or a model's ``server_args``
    in a file), so the ValueError's sentence says what to change.
    """
    for arg in args:
        option = owned_option(str(arg))
        if option:
            raise ValueError(
                f"{where}: the SGLang option {str(arg).split('=', 1)[0]!r} is refused because the plugin sets "
                f"{option} itself (given here it would silently win over the plugin's); "
                f"{OWNED_OPTIONS[option]}."
            )


# The largest answer worth reading: a vector of up to MAX_DIMENSIONS numbers per input, each as JSON text
# of up to BYTES_PER_NUMBER characters (base64 float32 takes 5.4), plus room for the envelope. A server
# that sends more is broken or hostile; reading on would only fill memory.
MAX_DIMENSIONS = 8192
BYTES_PER_NUMBER = 24
ENVELOPE_BYTES = 64 * 1024


def answer_limit(inputs: int, dimensions: int | None = None) -> int:
    """The most bytes an embeddings answer for ``inputs`` texts may take."""
    return ENVELOPE_BYTES + max(inputs, 1) * max(dimensions or MAX_DIMENSIONS, MAX_DIMENSIONS) * BYTES_PER_NUMBER


class AnswerTooLarge(ValueError):
    """An answer passed its byte limit: reading stopped there."""

    def __init__(self, limit: int, what: str = "the answer"):
        super().__init__(f"{what} passed {limit:,} bytes, more than any embeddings answer of its request can "
                         "take; reading stopped there (a broken or hostile server)")
