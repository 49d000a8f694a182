//! The integration tests, one binary (see STYLE.md): each module is one area of the product.

mod store;
mod support;
