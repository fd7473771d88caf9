use pagesync_runtime::config::{DatabaseConfig, DatabaseUrl};
use tokio_postgres::NoTls;

/// A database of this test's own, migrated, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates and migrates a fresh database on the server at `DATABASE_URL`.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        let pool = pagesync_runtime::connect::postgres(&db.config())
            .await
            .expect("migrate test database");
        pool.close();
        db
    }

    /// Creates a fresh database without running migrations.
    pub async fn empty() -> Self {
        let admin_url = crate::database_url();
        let name = format!("pagesync_test_{}", crate::unique_suffix());
        let admin = admin_client(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = with_database(&admin_url, &name);
        Self {
            name,
            url,
            admin_url,
        }
    }

    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            database_url: DatabaseUrl::parse(&self.url).expect("a test database URL parses"),
            database_pool_size: 4,
            database_statement_timeout: std::time::Duration::from_secs(15),
        }
    }

    /// A plain client for assertions.
    pub async fn client(&self) -> tokio_postgres::Client {
        admin_client(&self.url).await
    }

    /// The single `bigint` a query returns (a `count(*)`, say); panics naming the query.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// The first two columns of every row a query returns; panics naming the query.
    pub async fn pairs<A, B>(&self, sql: &str) -> Vec<(A, B)>
    where
        A: for<'r> tokio_postgres::types::FromSql<'r>,
        B: for<'r> tokio_postgres::types::FromSql<'r>,
    {
        self.client()
            .await
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        crate::cleanup::run(format!("database {name}"), async move {
            let (client, conn) = tokio_postgres::connect(&admin_url, NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .map_err(|e| e.to_string())
        });
    }
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("tests need Postgres at {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/p?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
