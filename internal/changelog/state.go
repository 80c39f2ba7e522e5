package changelog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// stateBucket is the JetStream key-value bucket that holds pgtide's own
// durable state next to the log, such as snapshot plans.
const stateBucket = "PGTIDE_STATE"

// stateKV returns the state bucket, creating it on first use.
func (l *Log) stateKV(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := l.js.KeyValue(ctx, stateBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   stateBucket,
			Storage:  jetstream.FileStorage,
			Replicas: l.replicas,
			History:  1,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("changelog: state bucket: %w", err)
	}
	return kv, nil
}

// GetState returns the value stored under key, or nil when there is none.
func (l *Log) GetState(ctx context.Context, key string) ([]byte, error) {
	kv, err := l.stateKV(ctx)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("changelog: get state %s: %w", key, err)
	}
	return e.Value(), nil
}

// PutState stores value under key durably (as durable as the log).
func (l *Log) PutState(ctx context.Context, key string, value []byte) error {
	kv, err := l.stateKV(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("changelog: put state %s: %w", key, err)
	}
	return nil
}
