"""``python -m pytest_embedeval.serve.gateway_main SMG_ARGS...``: smg's router, with its key from stdin.

The key the gateway checks on every request, and sends to every worker, is read from the first line of stdin:
on the command line it would be readable by every user of the machine (``/proc/PID/cmdline``).
"""

import sys


def main() -> None:
    key = sys.stdin.readline().rstrip("\n")
    from smg.launch_router import launch_router, parse_router_args

    launch_router(parse_router_args([*sys.argv[1:], *(["--api-key", key] if key else [])]))


if __name__ == "__main__":
    main()
