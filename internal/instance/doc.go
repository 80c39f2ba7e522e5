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
