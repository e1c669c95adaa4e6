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
  GET  /_ctl/agent?vmid=N  VM N's guest agent: {"vmid", "running", "answers", "requests"}, requests
                       being every agent command it answered, oldest first: [{"command", "params"}]
                       (e.g. {"command": "file-write", "params": {"file", "content"}}; nothing is
                       executed or written anywhere)
  PUT  /_ctl/agent?vmid=N  {"running": true|false, "answers": {...}}: starts or stops VM N's agent (a
                       clone has none running); answers are fakepve's vm.agent, e.g. {"exec":
                       {"systemctl reload nginx": {"exitcode": 1, "err-data": "..."}}} for what
                       exec-status reports of that command line
"""

import asyncio
import hmac
import json
import os
import signal
import sys

from aiohttp import web
from fakepve import FakePve
from fakepve.certs import make_cert

GIB = 1024 ** 3
TOKEN_ID = 'root@pam!operator'
CTL = '/_ctl/'
# node -> (maxmem, mem) in bytes, as /nodes and /cluster/resources report them
NODE_MEMORY = {'pve1': (64 * GIB, 48 * GIB), 'pve2': (64 * GIB, 16 * GIB)}


class TestbedPve(FakePve):
    """fakepve with per-node memory and the /_ctl routes."""

    def _build_app(self):
        app = super()._build_app()
        app.router.add_post(CTL + 'fail', self._ctl_fail)
        app.router.add_post(CTL + 'reset', self._ctl_reset)
        app.router.add_get(CTL + 'guests', self._ctl_guests)
        app.router.add_get(CTL + 'requests', self._ctl_requests)
        app.router.add_get(CTL + 'agent', self._ctl_agent)
        app.router.add_put(CTL + 'agent', self._ctl_agent_set)
        return app

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
                           'lock': vm.lock, 'config': vm.config, 'pending': vm.pending})
        for ct in self.cts:
            guests.append({'vmid': ct.vmid, 'node': ct.node, 'type': 'lxc', 'name': ct.name,
                           'hostname': ct.config.get('hostname'), 'tags': ct.config.get('tags', ''),
                           'status': ct.status, 'template': ct.template, 'lock': ct.lock, 'config': ct.config,
                           'pending': ct.pending})
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

    async def _ctl_agent(self, request):
        vm = self._ctl_vm(request)
        seen = [{'command': command, 'params': params} for command, params in vm.agent_requests]
        return web.json_response({'vmid': vm.vmid, 'running': vm.agent is not None, 'answers': vm.agent,
                                  'requests': seen}, dumps=lambda data: json.dumps(data, default=str))

    async def _ctl_agent_set(self, request):
        vm = self._ctl_vm(request)
        try:
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get('answers', {}), dict):
                raise ValueError('the body is not {"running", "answers": {...}}')
        except ValueError as e:
            return web.json_response({'error': 'bad agent: {0}'.format(e)}, status=400)
        vm.agent = dict(body.get('answers') or {}) if body.get('running', True) else None
        return web.json_response({'ok': 1})


def seed(pve):
    pve.add_node('pve2')
    pve.add_ceph_storage('ceph-pool')
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
