//! Analysis of a mention's text: language, sentiment, complaint cues, negativity, priority and
//! dedup keys. Pure functions over plain data; nothing here stores or posts anything.

pub(crate) mod complaint;
pub(crate) mod dedup;
pub mod lang;
pub mod model;
pub mod negativity;
pub(crate) mod priority;
pub mod sentiment;
pub(crate) mod spike;
mod vader;
