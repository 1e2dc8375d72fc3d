//! Runs a command under Landlock restrictions; used inside bubblewrap by the
//! build engine. See `wheelwright_workers::sandbox::landlock`.

fn main() {
    std::process::exit(wheelwright_workers::sandbox::landlock::exec_main(std::env::args_os().skip(1)));
}
