"""Sans-I/O Tendermint BFT consensus (Algorithm 1 of arXiv:1807.04938), its WAL and a simulator.

Imports only `chain`. The core (`consensus.core.ConsensusCore`) never touches a socket, a clock,
a file or a random number generator: the driver feeds it events and executes the actions it returns.
"""
