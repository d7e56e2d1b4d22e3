fn main() {
    std::process::exit(mp_remote::cli::main());
}
