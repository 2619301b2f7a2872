fn main() {
    let path = std::env::args().nth(2).unwrap();
    match harness::spec::load(std::path::Path::new(&path)) {
        Ok(s) => println!("ok: {} scenarios", s.scenarios.len()),
        Err(e) => {
            eprintln!("{}", e.render(false));
            std::process::exit(2)
        }
    }
}
