// `refinery::embed_migrations!` reads `migrations/` at compile time; without this a
// new migration file would not rebuild the crate and would be silently left out.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
