# The few commands people type. Each is one line of what README.md documents.
.PHONY: run test lint fmt bench

run:
	cargo run --release -- serve

test:
	scripts/test.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

bench:
	bench/run.sh
