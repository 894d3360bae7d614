"""paynet wallet: encrypted keystores, a failover HTTP client, local receipt verification, CLI.

The wallet trusts no node: it signs locally (keys never leave this process) and checks every
receipt against the validator set it pinned from genesis (see wallet/verify.py).
"""
