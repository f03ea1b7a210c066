# Sourced by the load scripts (bench-serve, bench-serve-compare, bench-engines) and
# scripts/lattice: what they all need before they start servers.

# A free TCP port on 127.0.0.1 (bound, then closed).
free_port() { "${PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Fills the `items` table the example plugins serve at mysql:// URL $1 with 1,000 rows: id n,
# named item-n, priced n/4.
fill_items_table() {
    LEASHED_URL=$1 target/release/leashed query \
        "DROP TABLE IF EXISTS items; CREATE TABLE items (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
         name VARCHAR(100) NOT NULL, price DECIMAL(10,2) NOT NULL); \
         INSERT INTO items (id, name, price) SELECT seq, CONCAT('item-', seq), seq / 4 FROM seq_1_to_1000" \
        >/dev/null 2>&1 || { echo "cannot fill the items table at $1" >&2; return 1; }
}

# `leashed compose PLUGIN --for wasi-sockets -o OUTPUT`, its chatter in OUTPUT.log unless it fails.
compose_for_stock() {
    target/release/leashed compose "$1" --for wasi-sockets -o "$2" >/dev/null 2>"$2.log" \
        || { cat "$2.log" >&2; return 1; }
}
