// Package pgtidev1 holds the published gRPC interface of the pgtide stream
// gateway (gateway.proto) and its generated Go code.
package pgtidev1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative gateway.proto
