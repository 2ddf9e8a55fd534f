//! A short fuzz pass in the normal `cargo test`: a few tens of thousands of
//! generated streams per target (seconds). Long runs use the
//! `ferrocorn-fuzz` binary.

use ferrocorn_fuzz::TARGETS;

/// Inputs per target; the seed changes nothing but which inputs.
const INPUTS: u64 = 20_000;
const SEED: u64 = 0x00fe_2200_c042;

#[test]
fn every_target_survives_a_short_run() {
    for target in &TARGETS {
        target.run_range(SEED, 0, INPUTS);
    }
}
