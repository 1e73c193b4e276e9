//! Step-level tests of the Paxos engine.
