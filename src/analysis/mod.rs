//! Analysis of a mention's text: sentiment, priority and dedup keys. Pure functions over
//! plain data; nothing here stores or posts anything.

pub mod dedup;
pub mod priority;
pub mod sentiment;
