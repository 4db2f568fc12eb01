"""An S3-compatible server on loopback for tests/s3.rs: moto, with
signatures checked against IAM credentials it creates.

    python s3_server.py DIR BUCKET

uploads every file under DIR to BUCKET (key = its path under DIR), prints
one JSON line (the endpoint, a key pair, temporary credentials with a
session token), then serves with authentication on until stdin closes.
Like AWS, a request signed with temporary credentials (keys from STS)
without their session token is refused (403 InvalidToken): moto itself does
not check the token.
"""

import json
import os
import sys

import boto3
from moto import settings
from moto.core import authorization
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server
import threading

folder, bucket = sys.argv[1], sys.argv[2]
tokens = {}


def app_with_tokens(app):
    def wrapped(environ, start_response):
        auth = environ.get("HTTP_AUTHORIZATION", "")
        key = auth.split("Credential=", 1)[-1].split("/", 1)[0] if "Credential=" in auth else ""
        if key in tokens and environ.get("HTTP_X_AMZ_SECURITY_TOKEN") != tokens[key]:
            body = b"<Error><Code>InvalidToken</Code><Message>no session token</Message></Error>"
            start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return wrapped


settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
app = DomainDispatcherApplication(create_backend_app)
server = make_server("127.0.0.1", 0, app_with_tokens(app), threaded=True)
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()
endpoint = f"http://127.0.0.1:{port}"

setup = dict(endpoint_url=endpoint, region_name="us-east-1",
             aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **setup)
iam.create_user(UserName="reader")
iam.put_user_policy(UserName="reader", PolicyName="all", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"}]}))
key = iam.create_access_key(UserName="reader")["AccessKey"]
iam.create_role(RoleName="reader", AssumeRolePolicyDocument="{}")
iam.put_role_policy(RoleName="reader", PolicyName="all", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]}))
temp = boto3.client("sts", **setup).assume_role(
    RoleArn="arn:aws:iam::123456789012:role/reader", RoleSessionName="tests")["Credentials"]
tokens[temp["AccessKeyId"]] = temp["SessionToken"]

s3 = boto3.client("s3", **setup)
s3.create_bucket(Bucket=bucket)
for root, _, files in os.walk(folder):
    for name in files:
        path = os.path.join(root, name)
        s3.upload_file(path, bucket, os.path.relpath(path, folder).replace(os.sep, "/"))

# From here on every request is authenticated.
authorization.ActionAuthenticatorMixin.request_count = 0
settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
print(json.dumps({
    "endpoint": endpoint,
    "key": [key["AccessKeyId"], key["SecretAccessKey"]],
    "temp": [temp["AccessKeyId"], temp["SecretAccessKey"], temp["SessionToken"]],
}), flush=True)
sys.stdin.read()
server.shutdown()
