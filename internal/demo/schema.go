// Package demo provides the sample database and write workload of
// `pgtide demo`: a small shop (customers, products, orders) in the schema
// "shop", and a steady trickle of inserts, updates and deletes against it.
package demo

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Schema is the schema holding the demo tables.
const Schema = "shop"

// schemaSQL creates the demo tables and their starting rows. Each table
// has a primary key, so capture sees the old key of updates and deletes.
const schemaSQL = `
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.customers (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name       text NOT NULL,
	email      text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS shop.products (
	id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name  text NOT NULL UNIQUE,
	price numeric(10,2) NOT NULL CHECK (price > 0),
	stock integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE IF NOT EXISTS shop.orders (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	customer_id bigint NOT NULL REFERENCES shop.customers (id),
	product_id  bigint NOT NULL REFERENCES shop.products (id),
	quantity    integer NOT NULL CHECK (quantity > 0),
	total       numeric(10,2) NOT NULL,
	status      text NOT NULL DEFAULT 'pending',
	created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO shop.customers (name, email)
SELECT v.name, lower(v.name) || '@example.com'
FROM (VALUES ('Ada'), ('Grace'), ('Edsger'), ('Barbara'), ('Ken')) AS v(name)
WHERE NOT EXISTS (SELECT 1 FROM shop.customers);

INSERT INTO shop.products (name, price, stock)
SELECT v.name, v.price, 1000
FROM (VALUES ('kettle', 24.90), ('teapot', 31.50), ('mug', 7.25),
             ('tea tin', 12.00), ('strainer', 4.75)) AS v(name, price)
WHERE NOT EXISTS (SELECT 1 FROM shop.products);
`

// CreateSchema creates the demo schema, its tables and starting rows in
// the database dsn connects to. It is idempotent: existing tables and rows
// are left alone.
func CreateSchema(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("demo: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	// The simple protocol runs the script's statements as one transaction.
	if _, err := conn.Exec(ctx, schemaSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("demo: create schema %s: %w", Schema, err)
	}
	return nil
}
