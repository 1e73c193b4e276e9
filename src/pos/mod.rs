//! Proof of stake, Peercoin style: a coin-age kernel instead of a nonce search.
//!
//! The rule as users state it — every coin earns one coin-day of age per day held, a block is
//! found when `hash < target × coin-age`, winning resets the staker's coin-age, and 365
//! coin-days consumed earn 0.05 coin — is implemented in the form Peercoin proved sound
//! (King & Nadal 2012; peercoin `v0.4.0ppc` `src/kernel.cpp`, `src/main.cpp`):
//!
//! * **The kernel hashes only fields the staker cannot grind** ([`KernelInput`]): the stake
//!   modifier, where the staked output came from (its block's time, its position, its
//!   creation time, its index) and the candidate timestamp. Never the header: the header has a
//!   nonce and a merkle root, which a staker could vary without limit — that would turn proof
//!   of stake back into proof of work scaled by coin-age. The only free variable is the
//!   timestamp, one attempt per output per second.
//! * **Two coin-ages, kept apart as Peercoin keeps them.** The kernel's *weight* is
//!   `value × (min(age, max_age) − min_age)` in coin-days ([`kernel_weight`]): capped, so
//!   coins cannot be hoarded offline into a burst of blocks, and zero at the minimum age. The
//!   coin-age that earns *interest* is uncapped ([`coin_days`]).
//! * **The reset is per output.** A coinstake spends the staked output and pays value plus
//!   interest to a new output, which starts at age 0; the staker's other outputs keep their age.
//!
//! The condition is `kernel_hash ≤ target × weight` ([`kernel_meets_target`]), the product
//! taken in big integers (it exceeds 2^256), with `≤` as in Peercoin.

pub mod kernel;
pub mod rule;
pub mod spec;
pub mod stake;

pub use rule::{Pos, PosError, PosState, StakeStats};
pub use spec::{Clock, PosSpec, Stakeholder};

pub use kernel::{
    InterestRule, KernelInput, coin_days, interest, kernel_meets_target, kernel_weight,
};
