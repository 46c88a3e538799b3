//! mentiondesk: watches the public web for brand mentions and puts the ones that matter on a
//! team's desk in Slack or Discord. README.md describes the contract; the modules follow the
//! layout in DESIGN.md.

pub mod analysis;
pub mod app;
pub mod chat;
pub mod clock;
pub mod config;
pub mod desk;
pub mod digest;
pub mod intake;
pub mod metrics;
pub mod model;
pub mod relay;
pub mod retry;
pub mod rules;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod sources;
pub mod spikes;
pub mod store;
pub mod store_config;
pub mod util;
