"""The testbed's Proxmox VE: fakepve (a schema-checked fake of the PVE API) with the guests and nodes
the tests expect, and a few control routes for tests that are not part of the PVE API.

    FAKEPVE_TOKEN_SECRET=... python fakepve-launch.py PORT CERT_DIR

Listens on https://127.0.0.1:PORT with a certificate made at start (CERT_DIR/fakepve.crt, the file a
client trusts; its key next to it). Tasks finish before the request that started them returns.
The API token root@pam!operator has the secret in FAKEPVE_TOKEN_SECRET (root@pam's password is the
same secret). Everything is kept in memory: a restart starts again from the seed below.

The cluster:
  pve1  64 GiB, 48 GiB used;  pve2  64 GiB, 16 GiB used (so placement by free memory picks pve2)
  local-lvm (lvmthin, per node, not shared) and ceph-pool (rbd, shared): a clone with target=<other
  node> needs storage=ceph-pool, as in PVE (fakepve refuses it otherwise for containers only; PVE
  for VMs too)
  CT 100 tmpl-debian: LXC template on pve1, rootfs local-lvm:base-100-disk-0,size=8G
  VM 9000 tmpl-qemu:  QEMU template on pve1, scsi0 local-lvm:base-9000-disk-0,size=10G

Control routes (same base URL and token header as the API; answered before fakepve sees them, so
injected failures and the request log never involve them):
  POST /_ctl/fail      {"method", "suffix", "status", "message", "times"} or {"method", "suffix",
                       "error", "times"}: requests with that method whose path ends with suffix fail
                       so (times: that many, then no more; absent: every one)
  POST /_ctl/reset     forget the injected failures and the request log; guests stay. With a body
                       {"method", "suffix"}: forget that one failure only
  GET  /_ctl/guests    every guest: vmid, node, type, name, hostname (lxc), tags, status, template,
                       lock, config, pending
  GET  /_ctl/requests  the API requests seen since the last reset: [{"method", "path", "body"}]
  POST /_ctl/agent     {"vmid", "agent"}: the VM's QEMU guest agent answers with fakepve's defaults
                       overridden by "agent" ({"os": {...}, "interfaces": [...]}, {} for the defaults);
                       "agent": null leaves the VM without an agent (fakepve's start state); "exec":
                       {"<argv joined by spaces>": {"exitcode", "err-data", ...}} is what exec-status
                       reports of that command (exit 0 otherwise)
  GET  /_ctl/agent?vmid=N  VM N's guest agent: {"vmid", "running", "answers", "requests"}, requests
                       being every agent command it answered, oldest first: [{"command", "params"}]
                       (e.g. {"command": "file-write", "params": {"file", "content"}}; nothing is
                       executed or written anywhere)

Backups (fakepve 0.5.0 answers POST /nodes/{node}/vzdump from the schema alone and refuses qemu
restores; this subclass stands in for PVE's vzdump and restore, after the API schema and PVE's
documented behaviour; it is not PVE):
  storage backups      nfs, shared, content backup: where the tests' archives go
  POST /nodes/{node}/vzdump  {vmid, storage, mode, compress, notes-template, protected, remove}: a
                       'vzdump' task. Each guest must be on that node (else the task fails "guest
                       <vmid> is not on node <node>") and unlocked ("VM is locked (<lock>)"); it is
                       locked 'backup' while its archive is written (mode=stop: stopped, then
                       started again) and the archive volume
                       <storage>:backup/vzdump-<qemu|lxc>-<vmid>-<YYYY_MM_DD-HH_MM_SS>.<vma|tar>[.zst|.gz|.lzo]
                       (UTC) appears in the storage's content with ctime, size, vmid, format and the
                       notes rendered from notes-template ({{guestname}}, {{node}}, {{vmid}},
                       {{cluster}}; no notes without it). The storage must exist and hold backup
                       content ("storage '<id>' does not support vzdump backups", before any task);
                       a second archive of one guest in the same second fails the task. The archive
                       keeps the guest's config as it was: what a restore brings back. remove= is
                       accepted; a storage's prune-backups is not modelled.
  GET|DELETE /nodes/{node}/storage/{storage}/content[/{volid}]  fakepve's own: lists the archives
                       (notes included); a delete is an 'imgdel' task
  POST /nodes/{node}/qemu {vmid, archive=<backup volid>, force, storage?}: a 'qmrestore' task; the
                       VM's config becomes the archived one (disks renamed to the target VMID, moved
                       to storage= when given). An existing VM is overwritten only with force=1 on
                       its own node and never while running ("unable to restore VM <vmid> - VM is
                       running"); the archive must be a VM's
  POST /nodes/{node}/lxc {vmid, ostemplate=<backup volid>, restore=1, force, storage?}: for an
                       archive made here, a 'vzrestore' task with the same rules for containers
                       ("can't overwrite running container"); any other create is fakepve's own
  GET  /_ctl/guests    also carries restoredFrom: the archive the guest was last restored from

QEMU config (fakepve 0.5.0 answers a VM's current values only):
  GET /nodes/{node}/qemu/{vmid}/config: with the pending changes applied (a change to a running VM
                       that waits for its next start), current=1 for the current values, as PVE
                       answers it

QEMU disk resize (fakepve 0.5.0 answers it with a task that changes nothing):
  PUT /nodes/{node}/qemu/{vmid}/resize {disk, size}: a 'resize' task that writes the new size= into
                       the disk's entry (size=N sets it, +N adds; a smaller size is refused)
"""

import asyncio
import copy
import hmac
import json
import os
import re
import signal
import sys
import time

from aiohttp import web
from fakepve import FakePve
from fakepve.certs import make_cert
from fakepve.lxc import FakeCt, format_size, parse_size
from fakepve.model import FakeVm, PveError, TaskError
from fakepve.server import ok

GIB = 1024 ** 3
TOKEN_ID = 'root@pam!operator'
CTL = '/_ctl/'
# node -> (maxmem, mem) in bytes, as /nodes and /cluster/resources report them
NODE_MEMORY = {'pve1': (64 * GIB, 48 * GIB), 'pve2': (64 * GIB, 16 * GIB)}
COMPRESS_EXT = {'zstd': '.zst', 'gzip': '.gz', '1': '.lzo', 'lzo': '.lzo'}
DISK_KEY = re.compile(r'^(ide|sata|scsi|virtio|efidisk|tpmstate|unused|mp)\d+$|^rootfs$')


class TestbedPve(FakePve):
    """fakepve with per-node memory and the /_ctl routes."""

    def _build_app(self):
        app = super()._build_app()
        app.router.add_post(CTL + 'fail', self._ctl_fail)
        app.router.add_post(CTL + 'reset', self._ctl_reset)
        app.router.add_get(CTL + 'guests', self._ctl_guests)
        app.router.add_get(CTL + 'requests', self._ctl_requests)
        app.router.add_post(CTL + 'agent', self._ctl_agent)
        app.router.add_get(CTL + 'agent', self._ctl_agent_log)
        return app

    # ------------------------------------------------- qemu config as PVE answers it

    async def _config_get(self, request):
        """A VM's config with its pending changes applied (a pending delete drops the key) unless
        current=1, as PVE answers it and as fakepve answers a container's; fakepve 0.5.0 answers a
        VM's current values only, so a change held for the next start looked not made."""
        vm = self._vm(request, 'VM.Audit')
        cfg = dict(vm.config)
        if request.query.get('current') not in ('1', 'true'):
            for key, value in vm.pending.items():
                if value is None:
                    cfg.pop(key, None)
                else:
                    cfg[key] = value
        if 'memory' in cfg:
            cfg['memory'] = str(cfg['memory'])  # PVE sends it as a string
        cfg['digest'] = vm.digest()
        return ok(cfg)

    # ------------------------------------------------------ qemu disk resize

    def _routes_qemu_resize(self):
        return [('PUT', '/nodes/{node}/qemu/{vmid}/resize', self._qm_resize)]

    async def _qm_resize(self, v, user):
        """A VM's disk grows as PVE grows it: size=N sets it, +N adds; never smaller, and a
        'resize' task that writes the new size= into the disk's config entry."""
        node, vmid, disk = v['node'], int(v['vmid']), v['disk']
        vm = self.vm(vmid)
        if vm is None or vm.node != node:
            raise PveError(500, "Configuration file 'nodes/{0}/qemu-server/{1}.conf' does not exist".format(node, vmid))
        if vm.lock:
            raise PveError(500, 'VM is locked ({0})'.format(vm.lock))
        value = vm.config.get(disk)
        if value is None:
            raise PveError(500, "disk '{0}' does not exist".format(disk))
        text = str(v['size'])
        request = parse_size(text.lstrip('+'))
        if request is None:
            raise PveError(500, 'invalid size string')
        found = re.search(r'(^|,)size=([^,]+)', value)
        size = (parse_size(found.group(2)) if found else None) or 0
        new = size + request if text.startswith('+') else request
        if new < size:
            raise PveError(500, 'shrinking disks is not supported')
        sized = 'size={0}'.format(format_size(new))
        conf = re.sub(r'(^|,)size=[^,]+', lambda m: m.group(1) + sized, value) if found else value + ',' + sized

        async def body():
            vm.config[disk] = conf
        return await self.task(node, 'resize', vmid, user, body, vm=vm)

    # ------------------------------------------------------ backups (vzdump, restore)

    def _routes_backup(self):
        return [('POST', '/nodes/{node}/vzdump', self._vzdump)]

    def _archive(self, volid):
        """(storage, volname, volume) of a vzdump archive made here, or None."""
        sid, colon, volname = str(volid or '').partition(':')
        vol = self.storages.get(sid, {}).get('volumes', {}).get(volname) if colon else None
        if vol is None or vol.get('content') != 'backup' or 'archived' not in vol:
            return None
        return sid, volname, vol

    @staticmethod
    def _notes(template, guest, node, vmid):
        values = {'guestname': guest.name, 'node': node, 'vmid': str(vmid), 'cluster': 'testbed'}
        text = re.sub(r'\{\{(guestname|node|vmid|cluster)\}\}', lambda m: values[m.group(1)], template)
        return text.replace('\\n', '\n')

    async def _vzdump(self, v, user):
        node, sid = v['node'], v.get('storage') or 'local'
        store = self.storages.get(sid)
        if store is None:
            raise PveError(500, "storage '{0}' does not exist".format(sid))
        if 'backup' not in re.split(r'[\s,;]+', str(store.get('content') or '')):
            raise PveError(500, "storage '{0}' does not support vzdump backups".format(sid))
        vmids = [int(x) for x in re.split(r'[\s,;]+', str(v.get('vmid') or '')) if x]
        if not vmids:
            raise PveError(400, 'Parameter verification failed.', {'vmid': 'property is missing and it is not optional'})
        mode, ext_c = v.get('mode') or 'snapshot', COMPRESS_EXT.get(str(v.get('compress') or '0'), '')
        log = ['INFO: starting new backup job: vzdump {0} --mode {1} --storage {2}'.format(
            ' '.join(map(str, vmids)), mode, sid)]

        async def body():
            for vmid in vmids:
                guest = self.guest(vmid)
                if guest is None or guest.node != node:
                    raise TaskError('guest {0} is not on node {1}'.format(vmid, node))
                if guest.lock:
                    raise TaskError('VM is locked ({0})'.format(guest.lock))
                kind = 'lxc' if guest in self.cts else 'qemu'
                volname = 'backup/vzdump-{0}-{1}-{2}.{3}{4}'.format(
                    kind, vmid, time.strftime('%Y_%m_%d-%H_%M_%S', time.gmtime()),
                    'tar' if kind == 'lxc' else 'vma', ext_c)
                volumes = store.setdefault('volumes', {})
                if volname in volumes:
                    raise TaskError("unable to create backup archive '{0}:{1}' - file exists".format(sid, volname))
                was_running = guest.status == 'running'
                guest.lock = 'backup'
                guest.config['lock'] = 'backup'
                try:
                    if mode == 'stop' and was_running:
                        guest.status = 'stopped'
                    archived = {'type': kind, 'vmid': vmid, 'name': guest.name,
                                'config': copy.deepcopy(dict((k, x) for k, x in guest.config.items() if k != 'lock'))}
                    size = 1 + sum(self._guest_disk_bytes(guest)) // 4
                    vol = {'content': 'backup', 'format': ('tar' if kind == 'lxc' else 'vma') + ext_c,
                           'size': size, 'vmid': vmid, 'ctime': int(time.time()), 'archived': archived}
                    if v.get('notes-template'):
                        vol['notes'] = self._notes(v['notes-template'], guest, node, vmid)
                    if v.get('protected'):
                        vol['protected'] = True
                    volumes[volname] = vol
                    log.append("INFO: creating vzdump archive '{0}'".format(self._volume_path(sid, volname, 'backup')))
                    if mode == 'stop' and was_running:
                        guest.status = 'running'
                finally:
                    guest.lock = None
                    guest.config.pop('lock', None)
                log.append('INFO: Finished Backup of VM {0}'.format(vmid))
            return 'INFO: Backup job finished successfully'
        return await self.task(node, 'vzdump', vmids[0] if len(vmids) == 1 else '', user, body, lock=False, log=log)

    @staticmethod
    def _guest_disk_bytes(guest):
        units = {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': GIB, 'T': 1024 * GIB}
        for key, value in guest.config.items():
            size = re.search(r'size=(\d+)([KMGT]?)', str(value)) if DISK_KEY.match(key) else None
            if size:
                yield int(size.group(1)) * units[size.group(2)]

    @staticmethod
    def _restored_config(archived, vmid, storage):
        """The archived config for VMID vmid: disks renamed to it (and moved to storage, if given)."""
        conf = copy.deepcopy(archived['config'])
        old = archived['vmid']
        for key, value in list(conf.items()):
            if not DISK_KEY.match(key):
                continue
            volume, comma, rest = str(value).partition(',')
            sid, colon, volname = volume.partition(':')
            if not colon or 'media=cdrom' in rest:
                continue
            volname = re.sub(r'(^|/)(vm|base|subvol)-{0}-'.format(old), r'\1vm-{0}-'.format(vmid), volname)
            volname = re.sub(r'^{0}/'.format(old), '{0}/'.format(vmid), volname)
            conf[key] = '{0}:{1}{2}{3}'.format(storage or sid, volname, comma, rest)
        return conf

    async def _qm_create(self, v, user):
        if not v.get('archive'):
            return await super()._qm_create(v, user)
        node, vmid = v['node'], int(v['vmid'])
        self.need_quorum()
        emsg = 'unable to restore VM {0} -'.format(vmid)
        found = self._archive(v['archive'])
        if found is None:
            raise PveError(500, "{0} volume '{1}' does not exist".format(emsg, v['archive']))
        archived = found[2]['archived']
        if archived['type'] != 'qemu':
            raise PveError(500, '{0} unknown backup file type of {1}'.format(emsg, v['archive']))
        existing = self.vm(vmid)
        other = self.guest(vmid)
        if existing is None and other is not None:
            raise PveError(500, "{0} CT {1} already exists on node '{2}'".format(emsg, vmid, other.node))
        if existing is not None:
            if not v.get('force') or existing.node != node:
                raise PveError(500, "{0} vm {1} already exists on node '{2}'".format(emsg, vmid, existing.node))
            if existing.status == 'running':
                raise PveError(500, '{0} VM is running'.format(emsg))
        conf = self._restored_config(archived, vmid, v.get('storage'))

        async def body():
            vm = existing
            if vm is None:
                vm = FakeVm(vmid, conf.get('name') or 'VM {0}'.format(vmid), node=node)
                self.vms.append(vm)
            vm.config = dict(conf)
            vm.name = conf.get('name') or 'VM {0}'.format(vmid)
            vm.status = vm.qmpstatus = 'stopped'
            vm.pending = {}
            vm.restored_from = v['archive']
            return 'restore vma archive: {0}'.format(v['archive'])
        return await self.task(node, 'qmrestore', vmid, user, body, vm=existing)

    async def _lxc_create(self, user, v):
        found = self._archive(v.get('ostemplate')) if v.get('restore') else None
        if found is None:
            return await super()._lxc_create(user, v)
        node, vmid = v['node'], int(v['vmid'])
        self.need_quorum()
        archived = found[2]['archived']
        if archived['type'] != 'lxc':
            raise PveError(500, "unable to restore CT {0} - archive '{1}' is not a container backup".format(
                vmid, v['ostemplate']))
        existing = self.ct(vmid)
        other = self.guest(vmid)
        if existing is None and other is not None:
            raise PveError(500, "VM {0} already exists on node '{1}'".format(vmid, other.node))
        if existing is not None:
            if not v.get('force') or existing.node != node:
                raise PveError(500, "CT {0} already exists on node '{1}'".format(vmid, existing.node))
            if existing.status == 'running':
                raise PveError(500, "can't overwrite running container")
        conf = self._restored_config(archived, vmid, v.get('storage'))

        async def body():
            ct = existing
            if ct is None:
                ct = FakeCt(vmid, node=node, defaults=False)
                self.cts.append(ct)
            ct.config = dict(conf)
            ct.status = 'stopped'
            ct.pending = {}
            ct.restored_from = v['ostemplate']
            return 'restored CT {0} from {1}'.format(vmid, v['ostemplate'])
        return await self.task(node, 'vzrestore', vmid, user, body, vm=existing)

    @web.middleware
    async def _middleware(self, request, handler):
        if not request.path.startswith(CTL):
            return await super()._middleware(request, handler)
        # the control routes skip fakepve's failures, delays and request log, but not the token
        auth = request.headers.get('Authorization', '')
        if not auth.startswith('PVEAPIToken='):
            return web.json_response({'error': 'Authorization: PVEAPIToken=... required'}, status=401)
        token, _, secret = auth[len('PVEAPIToken='):].partition('=')
        expected = self.apitokens.get(token)
        if expected is None or not hmac.compare_digest(secret.encode(), expected.encode()):
            return web.json_response({'error': 'authentication failure'}, status=401)
        return await handler(request)

    # ------------------------------------------------------------ node memory

    def _with_node_memory(self, response):
        body = json.loads(response.text)
        for item in body.get('data') or []:
            if item.get('type') == 'node' and 'maxmem' in item and item.get('node') in NODE_MEMORY:
                item['maxmem'], item['mem'] = NODE_MEMORY[item['node']]
        return web.json_response(body, status=response.status)

    async def _nodes(self, request):
        return self._with_node_memory(await super()._nodes(request))

    async def _resources(self, request):
        return self._with_node_memory(await super()._resources(request))

    # --------------------------------------------------------- control routes

    async def _ctl_fail(self, request):
        try:
            rule = await request.json()
            self.fail(rule['method'], rule['suffix'], rule.get('status'), rule.get('message'),
                      error=rule.get('error'), times=rule.get('times'))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            return web.json_response({'error': 'bad failure rule: {0!r}'.format(e)}, status=400)
        return web.json_response({'ok': 1})

    async def _ctl_reset(self, request):
        # with {"method", "suffix"}: that rule only, so tests running side by side keep theirs
        try:
            rule = await request.json() if request.can_read_body else {}
            if not isinstance(rule, dict):
                raise ValueError('the body is not an object')
        except ValueError as e:
            return web.json_response({'error': 'bad reset: {0}'.format(e)}, status=400)
        if rule.get('method') or rule.get('suffix'):
            self.failures.pop((rule.get('method'), rule.get('suffix')), None)
        else:
            self.failures.clear()
            self.requests.clear()
        return web.json_response({'ok': 1})

    async def _ctl_guests(self, request):
        guests = []
        for vm in self.vms:
            guests.append({'vmid': vm.vmid, 'node': vm.node, 'type': 'qemu', 'name': vm.name,
                           'tags': vm.config.get('tags', ''), 'status': vm.status, 'template': bool(vm.template),
                           'lock': vm.lock, 'config': vm.config, 'pending': vm.pending,
                           'restoredFrom': getattr(vm, 'restored_from', None)})
        for ct in self.cts:
            guests.append({'vmid': ct.vmid, 'node': ct.node, 'type': 'lxc', 'name': ct.name,
                           'hostname': ct.config.get('hostname'), 'tags': ct.config.get('tags', ''),
                           'status': ct.status, 'template': ct.template, 'lock': ct.lock, 'config': ct.config,
                           'pending': ct.pending, 'restoredFrom': getattr(ct, 'restored_from', None)})
        guests.sort(key=lambda g: g['vmid'])
        return web.json_response(guests, dumps=lambda data: json.dumps(data, default=str))

    async def _ctl_requests(self, request):
        seen = [{'method': m, 'path': p, 'body': b.decode('utf-8', 'replace')} for m, p, b in self.requests]
        return web.json_response(seen)

    def _ctl_vm(self, request):
        try:
            vmid = int(request.query.get('vmid', ''))
        except ValueError:
            raise web.HTTPBadRequest(text='vmid=N required')
        vm = next((vm for vm in self.vms if vm.vmid == vmid), None)
        if vm is None:
            raise web.HTTPNotFound(text='no VM {0}'.format(vmid))
        return vm

    async def _ctl_agent_log(self, request):
        vm = self._ctl_vm(request)
        seen = [{'command': command, 'params': params} for command, params in vm.agent_requests]
        return web.json_response({'vmid': vm.vmid, 'running': vm.agent is not None, 'answers': vm.agent,
                                  'requests': seen}, dumps=lambda data: json.dumps(data, default=str))


    async def _ctl_agent(self, request):
        try:
            rule = await request.json()
            vm = self.vm(int(rule['vmid']))
            agent = rule['agent']
            if agent is not None and not isinstance(agent, dict):
                raise ValueError('agent is not an object or null')
        except (ValueError, TypeError, KeyError) as e:
            return web.json_response({'error': 'bad agent rule: {0!r}'.format(e)}, status=400)
        if vm is None:
            return web.json_response({'error': 'no VM {0}'.format(rule['vmid'])}, status=404)
        vm.agent = agent
        return web.json_response({'ok': 1})


def seed(pve):
    pve.add_node('pve2')
    pve.add_ceph_storage('ceph-pool')
    pve.storages['backups'] = {'type': 'nfs', 'server': '192.0.2.50', 'export': '/srv/backups',
                               'path': '/mnt/pve/backups', 'content': 'backup', 'shared': 1, 'active': 1,
                               'files': set(), 'volumes': {}}
    volumes = pve.storages['local-lvm'].setdefault('volumes', {})
    pve.add_ct(100, 'tmpl-debian', node='pve1', template=True, ostemplate='local:vztmpl/debian-12-standard.tar.zst',
               config={'rootfs': 'local-lvm:base-100-disk-0,size=8G', 'memory': 512, 'swap': 512, 'cores': 1,
                       'net0': 'name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:01:00,ip=dhcp,type=veth'})
    volumes['base-100-disk-0'] = {'content': 'rootdir', 'format': 'raw', 'size': 8 * GIB, 'vmid': 100, 'ctime': 0}
    pve.add_vm(9000, 'tmpl-qemu', node='pve1', template=True,
               config={'scsi0': 'local-lvm:base-9000-disk-0,size=10G', 'scsihw': 'virtio-scsi-single',
                       'boot': 'order=scsi0', 'memory': 1024, 'cores': 1, 'sockets': 1, 'ostype': 'l26',
                       'net0': 'virtio=BC:24:11:00:90:00,bridge=vmbr0', 'template': 1})
    volumes['base-9000-disk-0'] = {'content': 'images', 'format': 'raw', 'size': 10 * GIB, 'vmid': 9000, 'ctime': 0}


async def main(port, cert_dir, secret):
    pve = TestbedPve(password=secret, host='127.0.0.1', port=port)
    pve.time_scale = 0
    pve.apitokens[TOKEN_ID] = secret
    seed(pve)
    cert, key, _ = make_cert(cert_dir, hosts=('127.0.0.1',))
    await pve.start(cert, key)
    print('fakepve listening on {0}'.format(pve.url), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await pve.stop()


if __name__ == '__main__':
    if len(sys.argv) != 3 or not os.environ.get('FAKEPVE_TOKEN_SECRET'):
        sys.exit('usage: FAKEPVE_TOKEN_SECRET=... fakepve-launch.py PORT CERT_DIR')
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], os.environ['FAKEPVE_TOKEN_SECRET']))
