"""Engines that serve embedding models. Kept free of pytest: SGLang's own processes import from here."""
