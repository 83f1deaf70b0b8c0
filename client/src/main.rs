//! The `shardline` binary: parses nothing itself; everything lives in
//! [`shardline_client::cli`].

fn main() -> std::process::ExitCode {
    shardline_client::cli::main()
}
