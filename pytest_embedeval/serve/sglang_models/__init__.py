"""Model classes SGLang loads through SGLANG_EXTERNAL_MODEL_PACKAGE (see ``serve/external.py``).

Imported inside the SGLang server process, never by the plugin itself.
"""
