import { Alert, Button, Group, Modal, PasswordInput, Stack } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { api, describeError, fieldErrorOf } from '../api.js';

export function ChangePasswordModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();
  const [done, setDone] = useState(false);

  const close = () => {
    setCurrent('');
    setNext('');
    setErrors({});
    setError(undefined);
    setDone(false);
    onClose();
  };
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setErrors({});
    setError(undefined);
    try {
      await api.changePassword({ currentPassword: current, newPassword: next });
      setDone(true);
    } catch (failure) {
      const field = fieldErrorOf(failure);
      if (field) setErrors({ [field.field]: field.message });
      else setError(describeError(failure));
    }
  };

  return (
    <Modal opened={opened} onClose={close} title="Change password">
      <form onSubmit={e => void submit(e)}>
        <Stack>
          {done && <Alert color="green">Your password is changed.</Alert>}
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <PasswordInput
            label="Current password"
            autoComplete="current-password"
            required
            value={current}
            onChange={e => setCurrent(e.currentTarget.value)}
            error={errors.current_password}
          />
          <PasswordInput
            label="New password"
            autoComplete="new-password"
            required
            value={next}
            onChange={e => setNext(e.currentTarget.value)}
            error={errors.new_password}
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Close
            </Button>
            <Button type="submit">Change password</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
