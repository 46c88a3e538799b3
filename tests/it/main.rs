//! The integration tests, one binary so the fakes under `common/` compile once. Each module is
//! one topic; `tests/gzip_bomb_memory.rs` stays a binary of its own (see its header).
//!
//! Every module shares this one process, so no test may change process-wide state: no
//! `std::env::set_var` or `set_current_dir`, no global tracing subscriber, no fixed port
//! (fakes and daemons bind 127.0.0.1:0 or take `free_port()`); settings for a child process
//! go through `Command::env`.

mod common;

mod alert_states;
mod analysis_cli;
mod analysis_parity;
mod check_online;
mod cli;
mod config_env;
mod config_paths;
mod crash;
mod delivery;
mod desk_timers;
mod digest;
mod discord_desk;
mod escalation_rounds;
mod lang_filter;
mod limits;
mod pipeline;
mod promote;
mod relevance;
mod replicas;
mod slack_desk;
mod source_languages;
mod source_leases;
mod sources_appstore;
mod sources_bluesky;
mod sources_discourse;
mod sources_feeds;
mod sources_github;
mod sources_googlenews;
mod sources_hackernews;
mod sources_lemmy;
mod sources_mastodon;
mod sources_reddit;
mod sources_scan;
mod sources_stackexchange;
mod sources_webhook;
mod sources_youtube;
mod spec_fakes;
mod spikes_published;
mod store_concurrency;
mod store_copy;
mod store_postgres;
mod test_alert;
