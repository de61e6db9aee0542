import { Alert, Button, Code, CopyButton, Group, Stack, Text } from '@mantine/core';

/** A secret the admin returns once (group token, API token), with a copy button. */
export function SecretOnce({ label, secret }: { label: string; secret: string }) {
  return (
    <Alert color="yellow" title={label}>
      <Stack gap="xs">
        <Text size="sm">Copy it now: it is shown only this once.</Text>
        <Group wrap="nowrap" align="center">
          <Code data-testid="secret" style={{ wordBreak: 'break-all' }}>
            {secret}
          </Code>
          <CopyButton value={secret}>
            {({ copied, copy }) => (
              <Button size="xs" color={copied ? 'teal' : 'blue'} onClick={copy}>
                {copied ? 'Copied' : 'Copy'}
              </Button>
            )}
          </CopyButton>
        </Group>
      </Stack>
    </Alert>
  );
}
