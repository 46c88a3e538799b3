//! The integration tests, one binary so the fakes under `common/` compile once. Each module is
//! one topic; `tests/gzip_bomb_memory.rs` stays a binary of its own (see its header).

mod common;

mod analysis_cli;
mod analysis_parity;
mod check_online;
mod cli;
mod crash;
mod delivery;
mod desk_timers;
mod digest;
mod discord_desk;
mod limits;
mod pipeline;
mod slack_desk;
mod sources_bluesky;
mod sources_feeds;
mod sources_hackernews;
mod sources_mastodon;
mod sources_reddit;
mod sources_scan;
mod spec_fakes;
mod store_concurrency;
