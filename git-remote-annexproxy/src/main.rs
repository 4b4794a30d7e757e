//! Until the remote helper lands, refuse clearly rather than confuse git.

fn main() {
    eprintln!("git-remote-annexproxy: annexproxy:: URLs are not yet supported by this build");
    std::process::exit(128);
}
