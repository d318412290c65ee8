"""Layer 2, serving: booting SGLang (argv, ports, placement, watchdog, life cycle), servers met by URL, and
the counted HTTP client. Imports only facts; kept free of pytest, since SGLang's own processes import from here."""
