"""Runs RestAuth operations through the released client library and reports what it saw.

Usage: python drive.py URL SERVICE PASSWORD < operations.json

Each operation is {"call": "user.<method>" | "group.<method>", "target": name?, "args": [...],
"mime": content type?}. Class methods (create, create_test, get, get_all) take the connection
first; the others are called on RestAuthUser/RestAuthGroup(conn, target). One JSON line per
operation on stdout: {"result": ...} or {"error": exception class, "status": ..., "type": ...}.
The library is used as a wiki would use it; nothing here knows wharf.
"""
import json
import sys

from RestAuthClient.common import RestAuthConnection
from RestAuthClient.error import UnknownStatus
from RestAuthClient.group import RestAuthGroup
from RestAuthClient.user import RestAuthUser
from RestAuthCommon.error import RestAuthException, ResourceNotFound

CLASSES = {'user': RestAuthUser, 'group': RestAuthGroup}
FACTORIES = {'create', 'create_test', 'get', 'get_all'}


def plain(value):
    """Results as JSON: users and groups by name."""
    if isinstance(value, (RestAuthUser, RestAuthGroup)):
        return value.name
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def run(conn, operation):
    kind, method = operation['call'].split('.')
    cls = CLASSES[kind]
    args = operation.get('args', [])
    kwargs = operation.get('kwargs', {})
    conn.set_content_handler(operation.get('mime'))
    if method in FACTORIES:
        return getattr(cls, method)(conn, *args, **kwargs)
    return getattr(cls(conn, operation['target']), method)(*args, **kwargs)


def describe(error):
    report = {'error': type(error).__name__}
    response = error.args[0] if error.args else None
    if isinstance(error, ResourceNotFound):
        response = error.response
    if hasattr(response, 'status'):
        report['status'] = response.status
        report['type'] = response.getheader('Resource-Type')
    return report


def main():
    url, service, password = sys.argv[1:4]
    conn = RestAuthConnection(url, service, password)
    for operation in json.load(sys.stdin):
        try:
            report = {'result': plain(run(conn, operation))}
        except (RestAuthException, UnknownStatus) as error:
            report = describe(error)
        sys.stdout.write(json.dumps(report) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
