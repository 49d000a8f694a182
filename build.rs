//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the migration folders at compile
//! time but cannot tell cargo about files that are new.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
