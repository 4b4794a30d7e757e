fn main() {
    eprintln!("annexproxy: not yet implemented");
    std::process::exit(1);
}
