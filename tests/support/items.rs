//! The `items` table the example plugins serve (guest/plugins), filled once per test binary.

use crate::{Account, instance_for, options, url};
use std::sync::Once;

/// Rows in the items table the plugins serve.
pub const ITEMS: u64 = 3000;

/// Fills `items` once per test binary: `ITEMS` rows, id n named `item-n` priced n/4.
pub fn items_table() {
    static FILLED: Once = Once::new();
    FILLED.call_once(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let url = url(Account::Native);
            let mut instance = instance_for(&url).await;
            let conn = instance.open(&options(&url)).await.unwrap().expect("login");
            let sql = format!(
                "DROP TABLE IF EXISTS items; \
                 CREATE TABLE items (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, \
                 price DECIMAL(10,2) NOT NULL); \
                 INSERT INTO items (id, name, price) SELECT seq, CONCAT('item-', seq), seq / 4 FROM seq_1_to_{ITEMS}"
            );
            instance.query(conn, &sql).await.unwrap().expect("items table");
            instance.close(conn).await.unwrap().expect("close");
        });
    });
}
