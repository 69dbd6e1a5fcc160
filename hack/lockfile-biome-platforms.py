#!/usr/bin/env python3
# Usage: python3 hack/lockfile-biome-platforms.py package-lock.json   (after any `npm install`)
# Adds lock entries for Biome's platform packages (and other platform-only optional dependencies,
# below) that this machine's npm registry does not serve, so that `npm ci` accepts the lock; on
# linux-x64-glibc npm skips them by their os/cpu/libc fields.
import json,sys
p=sys.argv[1]
d=json.load(open(p))
pk=d['packages']
biome=pk['node_modules/@biomejs/biome']
tmpl=pk['node_modules/@biomejs/cli-linux-x64']
for name,ver in biome['optionalDependencies'].items():
    key='node_modules/'+name
    if key in pk: continue
    parts=name.split('cli-')[1].split('-')
    e={k:v for k,v in tmpl.items() if k not in ('integrity','resolved','libc')}
    e['version']=ver; e['os']=[parts[0]]; e['cpu']=[parts[1]]
    if parts[0]=='linux': e['libc']=['musl' if 'musl' in parts else 'glibc']
    pk[key]=dict(sorted(e.items()))
# Platform-only optional dependencies of other packages: name -> (version, os).
OTHERS={'napi-windows-process-start-time':('0.1.0',['win32'])}  # vite's, Windows only
for key,entry in list(pk.items()):
    for name in entry.get('optionalDependencies',{}):
        if name in OTHERS and 'node_modules/'+name not in pk:
            ver,os_=OTHERS[name]
            pk['node_modules/'+name]={'dev':entry.get('dev',False),'optional':True,'os':os_,'version':ver}
d['packages']=dict(sorted(pk.items(), key=lambda kv: (kv[0]!='', kv[0])))
json.dump(d,open(p,'w'),indent=2); open(p,'a').write('\n')
