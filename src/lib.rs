//! Parloir: a WebRTC selective forwarding unit for video calls.
//!
//! - [`signal`]: the control plane (HTTP, web client, signalling).
//! - [`worker`]: the media plane (str0m connections, forwarding).
//! - [`serve`]: both in one process, the default.

pub mod config;
pub mod ids;
pub mod net;
pub mod serve;
pub mod signal;
pub mod worker;
