"""paynet wallet: encrypted keystores, a failover HTTP client, local receipt verification, CLI.

The wallet trusts no node: it signs locally (keys never leave this process) and checks every
receipt and balance against headers its light client verified, from the validator set pinned at
genesis through every governance change (wallet/lightclient.py, wallet/verify.py).
"""
