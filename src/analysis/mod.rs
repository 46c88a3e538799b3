//! Analysis of a mention's text: language, sentiment, complaint cues, negativity, priority,
//! dedup keys and relevance learned from the desk. Pure functions over plain data; nothing
//! here stores or posts anything.

pub(crate) mod complaint;
pub(crate) mod dedup;
pub mod lang;
pub mod model;
pub mod negativity;
pub(crate) mod priority;
pub mod relevance;
pub mod sentiment;
pub(crate) mod spike;
mod vader;
