"""The usage text ``shoal-csync2`` prints when no mode is given (exit 1)."""

HELP = """\
shoal-csync2 - the csync2 2.0 command line, run by shoal
(nodes talk shoal's protocol to each other: TLS 1.3 per node, group-key proof)

Usage: shoal-csync2 [-v..] [-C config-name] [-D database-dir] [-N hostname] [-p port] MODE ...

Modes taking file names:
  -h [-r] file..        remember these paths (and below, with -r) for the next -c
  -c [-r] file..        check these paths; record changes as dirty for every peer
  -u [-d] [-r] file..   update: push dirty paths to the peers
  -o [-r] file..        list the managed names at these paths (compare patterns too)
  -f [-r] file..        force: this node's version wins the next conflict on these paths
  -m file..             mark these paths dirty for every peer
  -x [-d] [[-r] file..] check (everything, or these paths), then update

Modes without file names:
  -c                    check the remembered paths (-h), then forget them
  -u [-d]               push everything dirty to the peers
  -H                    list remembered paths
  -L                    list every file entry of this node
  -M                    list dirty entries (force|chary, this node, peer, name)
  -S myname peername    list the file entries this pair shares
  -T [myname peername] [file]
                        compare with the peers: X differs, L only here, R only there
  -TT ...               as -T, printing unified diffs (peer's side first)
  -R                    drop entries of paths no group manages any more
  -i                    serve one session on stdin/stdout (inetd, socket activation)
  -ii                   serve peers until SIGTERM
  -iii                  serve one connection, then exit
  -k filename           write a new group key (never overwrites)

Exit codes: -H, -L, -M and -S return 2 when there is nothing to list; -T returns 2 when
everything compared is in sync. Otherwise 0 means no errors and 1 means errors
(a summary "Finished with N errors." goes to stderr).

Modifiers:
  -r          recursive
  -d          dry run: show what an update would push; change nothing remote
  -v          more output (repeatable)
  -l          log to syslog (the default with -i)
  -N name     this node's name; also the address -ii listens on and outgoing
              connections come from, when it is an IP address or resolves to one
  -p port     port of every peer and of -ii (default 30865)
  -C name     use csync2_NAME.cfg (and NODE_NAME.db3 for the state)
  -D dir|url  state directory or sqlite[3]:///path (default: shoal's own state,
              $SHOAL_STATE_DIR or /var/lib/shoal)
  -G g1,g2    only these groups
  -P p1,p2    update only these peers (-o: list only their names)
  -I          with -c/-x: record without marking dirty; with -T: mark differences dirty
  -X          with -TI: also mark names only the peer has for deletion
  -U          with -TI: accepted (shoal's new versions go to every peer)
  -F          new dirty entries of this check are forced
  -B -A -t -s file
              accepted for compatibility; no effect
  -W fd       after a check, write the directories of changed paths to fd (NUL-ended)

Environment:
  CSYNC2_SYSTEM_DIR   directory of csync2.cfg and csync2_NAME.cfg (default /etc)
  A file csync2.lock in that directory stops every run (exit 1).
"""
