//! Fuzzing of Ferrocorn's frame decoders on stable Rust.
//!
//! A structure-aware generator builds streams of valid and broken frames
//! from `(seed, index)`; each target feeds one stream to a decoder whole
//! and split at random points, and panics when an invariant breaks (see
//! [`targets`]). `cargo test` runs a short pass; the `ferrocorn-fuzz`
//! binary runs as many inputs as asked (10^7 and more) and, on a failure,
//! prints the seed and index that reproduce it.
//!
//! # Layout
//!
//! - [`rng`]: SplitMix64, so every input is reproducible from two numbers.
//! - [`gen`]: the input generator (frames, breakages, mutations, cuts).
//! - [`targets`]: the targets and their invariants.
//! - [`module_stream`], [`module_head`]: the nginx module's pure-Rust
//!   response logic, compiled here from its own source files (they use
//!   nothing but `ferrocorn-protocol`), so the exact code nginx runs is
//!   fuzzed without linking nginx.
//!
//! The worker's request decoder is `protocol::frame::check` fed by reads,
//! then `request_head_view::decode_request_member` and `RequestHeadView`
//! for heads (fuzzed here against prost); its body cursor
//! (`worker/src/worker/request_body.rs`) sits on a socket inside a binary
//! crate and is exercised end to end by `tests/test_hostile.py`.

pub mod gen;
pub mod rng;
pub mod targets;

#[path = "../../nginx-module/src/stream.rs"]
pub mod module_stream;

#[path = "../../nginx-module/src/head.rs"]
pub mod module_head;

use gen::{Direction, Input};
use rng::Rng;

/// One fuzz target: a name, which frames it is fed, and the check.
pub struct Target {
    pub name: &'static str,
    pub direction: Direction,
    /// Whether inputs usually start with a head frame.
    pub head_first: bool,
    pub run: fn(&Input),
}

/// Every target, in the order runs go through them.
pub static TARGETS: [Target; 4] = [
    Target {
        name: "request_decoder",
        direction: Direction::Request,
        head_first: true,
        run: targets::request_decoder,
    },
    Target {
        name: "request_head_view",
        direction: Direction::Request,
        head_first: true,
        run: targets::request_head_view,
    },
    Target {
        name: "response_body",
        direction: Direction::Response,
        head_first: false,
        run: targets::response_body,
    },
    Target {
        name: "response_head",
        direction: Direction::Response,
        head_first: true,
        run: targets::response_head,
    },
];

impl Target {
    /// The input number `index` of a run seeded with `seed`.
    pub fn input(&self, seed: u64, index: u64) -> Input {
        gen::input(
            &mut Rng::for_input(seed, index),
            self.direction,
            self.head_first,
        )
    }

    /// Runs inputs `from..to`; returns the number of stream bytes fed.
    pub fn run_range(&self, seed: u64, from: u64, to: u64) -> u64 {
        let mut bytes = 0;
        for index in from..to {
            let input = self.input(seed, index);
            bytes += input.stream.len() as u64;
            (self.run)(&input);
        }
        bytes
    }
}

/// Looks a target up by name.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
