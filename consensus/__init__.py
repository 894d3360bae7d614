"""Sans-I/O Tendermint BFT consensus (Algorithm 1 of arXiv:1807.04938), its runner, signer, WAL and a simulator.

Imports only `chain`. The core (`consensus.core.ConsensusCore`) never touches a socket, a clock,
a file or a random number generator; `consensus.runner.ConsensusRunner` feeds it events and executes
the actions it returns through a host's `ConsensusIO` (the node driver, or the simulator), and every
signature goes through `consensus.signer` (the double-sign guard).
"""
