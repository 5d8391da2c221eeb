//! Several workers on several hosts: load reports, placement, the registry
//! of nodes and rooms (in memory or in Redis), and the control channel
//! between signal servers and workers.

pub mod admission;
pub(crate) mod auth;
pub(crate) mod control;
pub mod load;
pub mod placement;
pub(crate) mod registry;
pub(crate) mod report;
pub(crate) mod reporter;
pub mod tls;
