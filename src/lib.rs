//! mentiondesk: watches the public web for brand mentions and puts the ones that matter on a
//! team's desk in Slack or Discord. README.md describes the contract; ARCHITECTURE.md the
//! rooms. The modules below are listed in data-flow order: each may use the ones above it,
//! never one below (`scripts/check_module_cycles.py` checks both that and that no two
//! modules import each other). Groups are kept apart by comments because rustfmt sorts
//! consecutive `mod` lines alphabetically.

// Leaves: plain data and helpers every component may use.
pub mod clock;
pub mod heap;
pub mod metrics;
pub mod model;
pub(crate) mod retry;
pub mod shutdown;
pub(crate) mod util;

// The config reader: TOML, `${VAR}`, typed accessors with problems at their line.
pub mod config;

// Judging text: the rule language and the analysis of a mention.
pub mod analysis;
pub mod rules;

// Where mentions come from.
pub mod sources;

// The one seam to the database.
pub mod store;

// Chat platforms: the neutral alert view and Slack, Discord, console.
pub mod chat;

// The desk: alert lifecycle, commands, the interaction dispatcher, timers.
pub mod desk;

// Pipeline stages: polls → intake → store → relay → chat; spike watch and digests beside.
pub mod digest;
pub mod intake;
pub mod relay;
pub mod spikes;

// HTTP: verified platform callbacks decoded into desk interactions, health, metrics.
pub mod server;

// The whole config file, built from each component's section.
pub mod settings;

// The wiring: builds every stage from the settings, runs them, stops them.
pub mod app;
