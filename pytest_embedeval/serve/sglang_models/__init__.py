"""Model classes SGLang loads through SGLANG_EXTERNAL_MODEL_PACKAGE (see ``engines.external``).

Imported inside the SGLang server process, never by the plugin itself.
"""
