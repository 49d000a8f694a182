//! The integration tests, one binary: each module is one area of the product.

mod admin;
mod audit;
mod auth;
mod changes;
mod cli;
mod config;
mod docker;
mod fuzz_corpus;
mod ops;
mod pages;
mod proxy;
mod replicas;
mod selfservice;
mod shutdown;
mod startup;
mod store;
mod support;
mod tls;
