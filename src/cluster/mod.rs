//! Several workers on several hosts: load reports, placement, the registry
//! of nodes and rooms (in memory or in Redis), and the control channel
//! between signal servers and workers.

pub mod auth;
pub mod control;
pub mod load;
pub mod placement;
pub mod registry;
pub mod report;
pub mod reporter;
