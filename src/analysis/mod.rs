//! Analysis of a mention's text: sentiment, complaint cues, negativity, priority and dedup
//! keys. Pure functions over plain data; nothing here stores or posts anything.

pub mod complaint;
pub mod dedup;
pub mod negativity;
pub mod priority;
pub mod sentiment;
pub mod spike;
