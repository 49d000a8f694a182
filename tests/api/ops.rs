//! Everyday operations through the real binary, on both stores: rotating a token (the old
//! secret working through its grace and refused after it, on a second gateway too), stored
//! credentials listed and deleted, the CLI's update, rotate, audit, credential and backup
//! commands, and expiry notices delivered once per token and window to a real webhook.

mod backup;
mod cli;
mod credentials;
mod notify;
mod rotate;
mod selfservice;
