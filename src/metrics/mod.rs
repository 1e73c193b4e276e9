//! Measuring cost: energy from RAPL counters or a stated power model, and the arithmetic that
//! turns hashes, seconds and watts into joules per block.

pub mod energy;
pub mod finality;
pub mod rapl;
