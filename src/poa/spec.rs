//! The proof-of-authority section of a chain spec (`poa`): the genesis signers and the epoch.

use serde::{Deserialize, Serialize};

use crate::chain::spec::{SpecError, SpecSection, bad, check_names};

/// The most genesis signers a spec may list (Clique networks run with a handful).
pub const MAX_SIGNERS: usize = 1_024;

/// Proof-of-authority (Clique) parameters. The block period is the spec's `target_spacing_s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoaSpec {
    /// The genesis signers (wallet names; keys from the spec's `wallet_seed`).
    pub signers: Vec<String>,
    /// Blocks between checkpoints, which clear pending votes (30 000 on Ethereum).
    #[serde(default = "default_epoch")]
    pub epoch: u32,
}

const fn default_epoch() -> u32 {
    30_000
}

impl PoaSpec {
    /// Checks the signer list and the epoch.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.signers.is_empty() {
            return Err(bad("poa.signers", "the signer set is empty"));
        }
        check_names("poa.signers", &self.signers)?;
        if self.signers.len() > MAX_SIGNERS {
            return Err(bad(
                "poa.signers",
                format!("{} signers, more than {MAX_SIGNERS}", self.signers.len()),
            ));
        }
        if self.epoch == 0 {
            return Err(bad("poa.epoch", "must be at least 1"));
        }
        Ok(())
    }
}

impl SpecSection for PoaSpec {
    const KEY: &'static str = "poa";
}
