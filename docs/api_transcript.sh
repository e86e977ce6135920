#!/bin/bash
# Regenerates the transcript of docs/api.md: run from the repository root with the
# project venv active (`flowmonkey` on PATH); needs curl and jq; uses port 8080.
ROOT=$(pwd)
cd "$(mktemp -d)" && cp -r "$ROOT/examples" .
FM=flowmonkey
rm -f demo.db*
$FM serve --store sqlite:///demo.db --port 8080 --flows examples/approval/flow.yaml --handlers examples/approval/handlers.py --flows examples/multi_level_approval/flow.yaml --handlers examples/multi_level_approval/handlers.py --no-access-log > serve.out 2> serve.err &
PID=$!
for i in $(seq 100); do curl -sf localhost:8080/healthz >/dev/null && break; sleep 0.1; done
export KEY=$(grep -o "fmk_[A-Za-z0-9_-]*" serve.err | head -1)
echo "KEY=$KEY" > key.txt
H='-H "Authorization: Bearer $KEY"'
run() { echo "\$ $1"; eval "$1"; echo; echo; }
run 'curl -s localhost:8080/healthz'
run 'curl -s localhost:8080/readyz'
run 'curl -s -H "Authorization: Bearer $KEY" localhost:8080/api/v1/flows'
run 'curl -s -H "Authorization: Bearer $KEY" localhost:8080/api/v1/flows/expense-approval/graph'
run 'curl -s -H "Authorization: Bearer $KEY" localhost:8080/api/v1/flows/expense-approval | jq -c "{id, version, initialStepId, steps: (.steps | keys)}"'
run 'curl -s -D - -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -H "Idempotency-Key: exp-42" -H "X-Request-Id: demo-1" localhost:8080/api/v1/executions -d '"'"'{"flow_id": "expense-approval", "input": {"expense": {"id": "EXP-42", "amount": 249.99}}, "wait": 5}'"'"' -o start.json; jq -c "{id, status, current_step_id, wait_reason, run_number}" start.json'
ID=$(jq -r .id start.json)
echo "ID=$ID" >> key.txt
run 'curl -s -D - -o /dev/null -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -H "Idempotency-Key: exp-42" localhost:8080/api/v1/executions -d '"'"'{"flow_id": "expense-approval", "input": {"expense": {"id": "EXP-42", "amount": 249.99}}}'"'"' | grep -iE "^(HTTP|location|idempotent)"'
run 'curl -s -H "Authorization: Bearer $KEY" "localhost:8080/api/v1/executions?status=waiting&limit=2" | jq -c "{items: [.items[] | {id, flow_id, status}], next_cursor}"'
run 'curl -s -H "Authorization: Bearer $KEY" localhost:8080/api/v1/executions/$ID | jq -c "{status, context: (.context | keys), tokens}"'
run 'curl -s -H "Authorization: Bearer $KEY" localhost:8080/api/v1/executions/$ID/history | jq -c ".items[] | {step_id, attempt, outcome}"'
run 'curl -s -H "Authorization: Bearer $KEY" "localhost:8080/api/v1/executions/$ID/events?after=2" | jq -c ".items[] | {sequence, type}"'
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions/$ID/signal -d '"'"'{"step_id": "nope"}'"'"''
(curl -s -N -H "Authorization: Bearer $KEY" -H "Accept: text/event-stream" -H "Last-Event-ID: 5" localhost:8080/api/v1/executions/$ID/events > sse.txt) &
SSE=$!
sleep 0.5
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions/$ID/resume -d '"'"'{"data": {"approved": true}}'"'"' | jq -c "{id, status}"'
wait $SSE
echo '$ curl -N -H "Authorization: Bearer $KEY" -H "Accept: text/event-stream" -H "Last-Event-ID: 5" localhost:8080/api/v1/executions/$ID/events'
cat sse.txt; echo
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions/$ID/resume -d "{}"'
run 'curl -s -H "Authorization: Bearer $KEY" -X POST localhost:8080/api/v1/executions/$ID/cancel'
run 'curl -s -H "Authorization: Bearer $KEY" -X POST localhost:8080/api/v1/executions/$ID/retry'
# a second one to cancel, and one that fails, to retry
curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions -d '{"flow_id": "expense-approval", "input": {"expense": {"id": "EXP-43", "amount": 10}}, "wait": 5}' -o two.json
ID2=$(jq -r .id two.json)
echo "ID2=$ID2" >> key.txt
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions/$ID2/cancel -d '"'"'{"reason": "duplicate claim"}'"'"' | jq -c "{cancelled, status: .execution.status, cancellation: .execution.cancellation}"'
curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions -d '{"flow_id": "expense-approval", "input": {"expense": {"id": "EXP-44", "amount": -5}}, "wait": 5}' -o three.json
ID3=$(jq -r .id three.json)
echo "ID3=$ID3" >> key.txt
run 'curl -s -H "Authorization: Bearer $KEY" localhost:8080/api/v1/executions/$ID3 | jq -c "{status, error}"'
run 'curl -s -H "Authorization: Bearer $KEY" -X POST localhost:8080/api/v1/executions/$ID3/retry | jq -c "{status, run_number, last_error: .last_error.code}"'
curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions -d '{"flow_id": "expense-approval", "input": {"expense": {"id": "EXP-45", "amount": 99}}, "wait": 5}' -o four.json
TOKEN=$(jq -r .context.approvalRequest.resumeToken four.json)
echo "TOKEN=$TOKEN" >> key.txt
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions/bulk -d '"'"'{"action": "cancel", "filter": {"status": ["waiting"], "flow_id": "expense-approval"}, "dry_run": true}'"'"''
run 'curl -s -H "Content-Type: application/json" localhost:8080/api/v1/resume/$TOKEN -d '"'"'{"data": {"approved": false}}'"'"''
run 'curl -s -H "Content-Type: application/json" localhost:8080/api/v1/resume/$TOKEN -d "{}"'
curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions -d "{\"flow_id\": \"multi-level-approval\", \"input\": $(cat examples/multi_level_approval/input-small.json), \"wait\": 5}" -o five.json
run 'curl -s -H "Authorization: Bearer $KEY" "localhost:8080/api/v1/tasks?status=pending&role=supervisor" | jq -c "{items: [.items[] | {id, title, role, status}], next_cursor}"'
TASK=$(curl -s -H "Authorization: Bearer $KEY" "localhost:8080/api/v1/tasks" | jq -r ".items[0].id")
echo "TASK=$TASK" >> key.txt
run 'curl -s -H "Authorization: Bearer $KEY" localhost:8080/api/v1/tasks/$TASK | jq -c "{id, execution_id, step_id, priority, form}"'
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/tasks/$TASK/complete -d '"'"'{"port": "approve", "data": {"comment": 5, "extra": true}}'"'"' | jq -c .'
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/tasks/$TASK/complete -d '"'"'{"port": "approve", "data": {"comment": "fine"}}'"'"' | jq -c "{id, status, current_step_id}"'
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" localhost:8080/api/v1/executions -d '"'"'{"flow_id": 7, "inputs": {}, "wait": 600}'"'"' | jq .'
run 'curl -s -i localhost:8080/api/v1/executions | grep -iE "^(HTTP|www-authenticate)|^\{"'
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: text/plain" localhost:8080/api/v1/executions -d "hello"'
run 'curl -s -H "Authorization: Bearer $KEY" -H "Content-Type: application/yaml" --data-binary @examples/approval/flow.yaml localhost:8080/api/v1/flows -w " %{http_code}\n"'
run 'curl -s localhost:8080/metrics | grep -E "^flowmonkey_(executions|steps_total|http_requests_total)" | head -8'
kill -TERM $PID; wait $PID; echo "serve exit=$?"
