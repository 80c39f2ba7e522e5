// Package instance is pgtide's resource controller: it boots PostgreSQL
// instances from snapshots on demand, shares them between connections,
// stops them when idle, enforces limits, and cleans up after a crash.
//
// # Controller and drivers
//
// A [Controller] decides when instances exist; a [Driver] makes them
// exist. The controller keys instances by dataset and snapshot (and by
// user when instances are private), counts the connections holding each
// through [Lease]s, lets concurrent first connections share one boot,
// and stops an instance IdleTimeout after its last lease ended. The
// driver boots an instance of a [Spec] and returns an [Endpoint] to reach
// it; [Local] runs instances as processes on this machine, and a driver
// for Kubernetes would create pods instead.
//
// # Warm pool
//
// With Config.Warm set, the controller keeps instances booted from the
// newest ready snapshot of each dataset before anyone asks, so a first
// connection does not wait for a copy and a server start. Shared, the
// dataset's instance for its newest snapshot skips the idle timeout;
// private, unowned spares wait for a user's first connection to claim
// them, and a replacement boots in the background. A goroutine looks
// for newer snapshots every WarmInterval and moves the pool to them; the
// instances of the older snapshot then stop once idle. Warm instances
// take only free slots under MaxInstances and are the first stopped when
// a request needs room. [Status] marks them.
//
// # Local instances
//
// [Local] keeps each instance in <data_dir>/instances/<id>: a state file
// (state.json) naming the owning process and the postmaster, the data
// directory copied from the snapshot (cp --reflink=auto, so copy-on-write
// where the file system offers it), the server log, and a private socket
// directory. On start it takes a lock on the instances directory and
// removes whatever an earlier process left there: postmasters are killed
// and directories deleted.
package instance
