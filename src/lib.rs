//! Parloir: a WebRTC selective forwarding unit for video calls.
//!
//! - [`signal`]: the control plane (HTTP, web client, signalling).
//! - [`worker`]: the media plane (str0m connections, forwarding).
//! - [`cluster`]: load reports, placement, registry, control channel.
//! - [`roles`]: the processes: `serve` (all in one), `signal`, `worker`.

pub mod access;
pub mod cli;
pub mod cluster;
pub mod config;
/// Entry points of the fuzz targets (`fuzz/`), built by cargo fuzz; the
/// unit tests replay the seeds and past crashes through them.
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod ids;
pub mod memory;
pub(crate) mod metrics;
pub mod net;
pub mod per_address;
pub mod privacy;
pub(crate) mod rate;
pub mod roles;
pub(crate) mod secret;
pub(crate) mod signal;
pub mod state_dir;
/// The limits per client address (their figures are public: tests and
/// operators read them).
pub use signal::limits;
pub mod worker;
